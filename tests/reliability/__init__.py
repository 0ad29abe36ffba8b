"""Reliability tests for issue #6: stress, re-entrancy, faults, clock jumps, bad input and the kill switch."""
