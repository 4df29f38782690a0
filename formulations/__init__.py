"""Exact formulations (pyomo models written once, solved by any backend) and their decoders."""
