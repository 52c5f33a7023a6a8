"""Stage 4: FVD/PRD, image metrics, the Shapes oracle and the gallery writer."""
