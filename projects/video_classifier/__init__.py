"""Video classification: clip sampling from decoded videos, temporal networks, a procedural action set."""
