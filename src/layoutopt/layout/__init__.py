"""Layout planning: permutation algebra, the labelling problem, its exact solution, and the graph edit."""
