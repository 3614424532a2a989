"""Pictures of animations: plots and the 2D preview."""
