"""Fault injection: kill a training process at random points and check that resume is bit-exact."""
