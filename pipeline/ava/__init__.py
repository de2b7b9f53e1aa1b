"""AVA file formats: label maps, annotation/exclusion/result CSVs, proposal pickles, clock."""
