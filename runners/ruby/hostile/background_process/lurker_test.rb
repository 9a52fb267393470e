require 'minitest/autorun'
require_relative 'lurker'

class LurkerTest < Minitest::Test
  def test_answer
    assert_equal 42, Lurker.answer
  end
end
