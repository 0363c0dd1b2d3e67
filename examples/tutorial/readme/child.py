# SPDX-License-Identifier: LGPL-2.1-or-later
# The README's Python child, as it shows it (parent.c spawns it).
import gi
gi.require_version("Mpq", "1.0")
from gi.repository import GLib, Mpq

pipe = Mpq.Pipe.new_for_child()
loop = GLib.MainLoop()

def on_do(pipe, msg):
    pipe.send(Mpq.REQ_FINISHED, recipient_pid=msg.sender_pid, data={"value": msg.data["value"] ** 2})

pipe.connect("message-received::DO", on_do)
pipe.connect("message-received::DIE", lambda *_: loop.quit())
pipe.connect("closed", lambda *_: loop.quit())
pipe.start()
loop.run()
