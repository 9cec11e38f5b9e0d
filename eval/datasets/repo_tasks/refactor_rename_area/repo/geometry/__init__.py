"""Areas of simple shapes and a floor-plan report."""
