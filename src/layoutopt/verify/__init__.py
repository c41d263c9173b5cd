"""Numerical equivalence of a program before and after planning."""
