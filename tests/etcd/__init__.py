"""Tests of the etcd backend on real etcd servers (started by the tests)."""
