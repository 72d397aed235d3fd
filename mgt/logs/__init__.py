"""mgt.logs"""
