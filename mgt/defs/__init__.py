"""mgt.defs"""
