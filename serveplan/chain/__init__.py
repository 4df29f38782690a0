"""Server chain composition: instances, placements, chains, verification, bounds, simulation."""
