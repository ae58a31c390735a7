from . import DASHBOARD, RULES

print(f"rules:     {RULES}\ndashboard: {DASHBOARD}")
