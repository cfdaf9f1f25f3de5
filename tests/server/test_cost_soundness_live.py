from __future__ import annotations

from tests.server.conftest import gql


async def test_explore(client, tokens, database_url):
    if "sqlite" not in database_url:
        return
    after = None
    nulls = []
    for _ in range(5):
        r = await gql(
            client,
            "query($a: String) { products(first: 100, after: $a) { pageInfo { hasNextPage endCursor } nodes { id name averageRating reviews(first: 1) { totalCount } } } }",
            {"a": after},
            tokens.headers("ADMIN"),
        )
        d = r.json()["data"]["products"]
        nulls += [
            n for n in d["nodes"] if n["averageRating"] is None or n["reviews"]["totalCount"] == 0
        ]
        if not d["pageInfo"]["hasNextPage"]:
            break
        after = d["pageInfo"]["endCursor"]
    print("NULLS", nulls)
    for slug in ("acme", "globex"):
        r = await gql(
            client,
            "{ viewer { id role orders(first: 2) { totalCount } reviews(first: 2) { totalCount } } }",
            None,
            tokens.headers("ADMIN", slug),
        )
        print("VIEWER", r.json())
