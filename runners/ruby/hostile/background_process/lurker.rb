module Lurker
  def self.answer
    # A grandchild that outlives the test, detached into a session of its own.
    pid = fork do
      Process.setsid
      fork { $stdout.reopen("/dev/null"); loop { sleep 1 } }
      exit!(0)
    end
    Process.wait(pid)
    42
  end
end
