"""The engine: the run config, input readers, the run ledger, the plugin host and the batch
runner. It knows nothing of Label Studio or of training: what it needs from them (models named
``registry:``) it is handed through small interfaces."""
