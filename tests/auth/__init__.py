"""Tests for the auth package."""
