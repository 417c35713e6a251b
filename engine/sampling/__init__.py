"""Sampling: ODE solvers, guidance and the generators' sampling loops (no networks here)."""
