"""The demos behind ``circuit-breakers demo``: a simulated session, and two processes sharing Redis.

Outside the library proper: nothing in the package imports them but the command line.
"""
