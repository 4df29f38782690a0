"""Arrival processes and trace loaders; every workload is numpy arrays, never an object per request."""
