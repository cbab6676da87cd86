"""Rig state to Prometheus at scrape time, and the JSON API."""
