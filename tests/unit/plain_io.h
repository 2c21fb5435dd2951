/*
 * An engine_io over plain buffers, for driving the engine without an audio
 * server: a port is the address of its float buffer (any struct whose first
 * member is that buffer will do), and there is no MIDI.
 */
#ifndef RUNWAY_TESTS_PLAIN_IO_H
#define RUNWAY_TESTS_PLAIN_IO_H

#include "engine.h"

extern const struct engine_io plain_io;

#endif
