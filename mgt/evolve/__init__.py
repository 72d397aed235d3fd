"""mgt.evolve"""
