"""The loop's operations (pre-annotate, push, pull, retrain, re-predict) as plain functions
that take progress and log callbacks: the layer every command line, server and test calls."""
