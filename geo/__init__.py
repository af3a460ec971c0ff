"""Geo: stores on passes and geo-campaigns, as pure decisions: distances, which campaigns a card
qualifies for, their rendered texts, and which (at most 10) store locations its pass carries."""
