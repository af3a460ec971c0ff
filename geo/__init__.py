"""Geo: stores on passes and geo-campaigns, as pure decisions: distances and the nearest-store
index, which campaigns a card qualifies for and their rendered texts, which (at most 10) store
locations and which notice its pass carries (evaluate.py), and what an app ping may alert."""
