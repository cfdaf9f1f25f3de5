"""Tests of the persisted_queries package."""
