"""Library code for the distribution-distance studies (experiments/ drive them).

``meta_allocation``: label allocation in mixed linear regression (exact risk and
Monte Carlo); ``imputation``: missingness masks and imputers.
"""
