"""Export: one complete checkpoint as an adapter or a merged model, with its provenance."""
