package com.example.isthmus;

/** The first interface a provider exports. Both sides load it from the same jar. */
public interface Greeter {
    /** Answers "APPLICATION/INSTANCE: hello WHO", so a caller can tell which instance answered. */
    String greet(String who);
}
