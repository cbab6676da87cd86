"""Rig inventory, pollers, the nameplate model catalogue and poll scheduling."""
