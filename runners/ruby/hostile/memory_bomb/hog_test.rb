require 'minitest/autorun'
require_relative 'hog'

class HogTest < Minitest::Test
  def test_eat
    assert Hog.eat
  end
end
