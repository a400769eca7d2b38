"""Phone numbers: number documents and their store, who may use a number, the DIDs of
connectivity documents and the checks every connectivity write runs on them."""
