"""Export: one complete checkpoint as an adapter, a merged model or a GGUF file, with its provenance and the gate run
on it."""
