"""Tests of the store layer (a package, so its conftest has a module name of its own)."""
