"""mgt.analyze"""
