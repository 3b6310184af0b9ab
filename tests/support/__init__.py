"""Helpers the tests share: fixture data, tiny params and models, loopback servers."""
