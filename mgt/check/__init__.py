"""mgt.check"""
