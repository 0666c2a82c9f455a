package com.example.isthmus;

/** The second interface a provider exports, on the same port as Greeter. */
public interface Orders {
    /** Answers "APPLICATION/INSTANCE: placed ITEM", so a caller can tell which instance answered. */
    String place(String item);
}
