require 'minitest/autorun'
require_relative 'litter'

class LitterTest < Minitest::Test
  def test_answer
    assert_equal 42, Litter.answer
  end
end
