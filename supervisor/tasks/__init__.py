"""Cooperating tasks of one supervisor run, one module each."""
