"""What the stored runs say: frontiers and Pareto fronts (frontier.py), choosing a budget (decide.py)."""
