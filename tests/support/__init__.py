"""Offline test infrastructure: a scripted loopback judge and tiny real checkpoints (DESIGN §9).

Test code only; nothing in pytest_arena imports it.
"""
