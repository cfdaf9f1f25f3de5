"""Node.js test clients (audit, GraphiQL, Apollo) and checks of the shipped GraphiQL assets."""
