"""The zoo's plug-in for ``ensemble``: everything ``zoo`` teaches the general layer, in one module.

Decisions: ``ensemble`` never imports ``zoo``; this module is named in the
``ensemble.plugins`` entry-point group (``pyproject.toml``), so
``ensemble.plugins.load_plugins()`` imports it when a bundle or the command
line needs a zoo kind. Importing it registers the zoo's saved parts (zoo
references, rebuilt zoo architectures, ``ZooClassifier``) and trusted types
(the NB text models), and the command line's sources (dataset names, zoo model
names, library entries).
"""
