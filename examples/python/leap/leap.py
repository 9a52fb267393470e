def leap_year(year):
    # A common first attempt: forgets the 400-year rule.
    return year % 4 == 0 and year % 100 != 0
