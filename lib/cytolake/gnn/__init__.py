"""Area classification on the surface graphs: data loading, the GAT, training and prediction."""
