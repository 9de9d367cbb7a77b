"""Label Studio sync: the connection, a local server, labeling configs, push and ranking.

Everything that talks HTTP to Label Studio goes through :mod:`preannot.labelstudio.client`.
"""
