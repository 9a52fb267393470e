require 'minitest/autorun'
require_relative 'bomb'

class BombTest < Minitest::Test
  def test_go
    assert Bomb.go
  end
end
