"""One module per Crossbar resource: thin handlers mapping a verb to a store operation."""
