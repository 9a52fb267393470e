module Hog
  def self.eat
    chunks = []
    loop { chunks << ("x" * (16 << 20)) }
  end
end
