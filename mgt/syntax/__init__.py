"""mgt.syntax"""
