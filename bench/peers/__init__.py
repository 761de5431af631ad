"""The same workloads as `make bench` on other engines (peers), each a script run in an environment of its own.

A peer script imports only the standard library, its engine and bench.measures: Flowline is not installed where
it runs, and the peer is never a dependency of Flowline.
"""
